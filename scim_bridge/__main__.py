from scim_bridge.cli import main

main()
