"""The hello-world baseline of load.py: one Flask route, served by gunicorn as the bridge is."""

from __future__ import annotations

from flask import Flask

app = Flask(__name__)


@app.get("/")
def hello() -> dict[str, str]:
    return {"hello": "world"}
