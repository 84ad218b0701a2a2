"""TokenRent desktop storefront (PySide6).

Speaks HTTP to the vendor's server (desktop_app.api) and talks to the local
license agent (desktop_app.agent). Never imports server_stub: the local demo
server is started as a separate process (desktop_app.demo_server).
"""
__all__ = ["__version__"]
__version__ = "0.1.0"
