"""One command end to end: locate, plan, take the phone's lane, send, judge, record."""
