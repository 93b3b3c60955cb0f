"""What a PBX asks of sipbridge over SIP: the inbound router and the ACTION-URI relay."""
