"""scim-bridge: the SCIM 2.0 endpoint Microsoft Entra ID calls to provision GitLab."""

__version__ = "0.1.0"
