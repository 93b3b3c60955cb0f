"""sipbridge: control calls on Poly desk phones by SIP Call-ID."""

__version__ = "0.1.0"
