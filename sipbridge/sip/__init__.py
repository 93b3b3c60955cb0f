"""SIP: message handling (pure), the ACTION-URI composer (pure), and the pjsua2 user agent."""
