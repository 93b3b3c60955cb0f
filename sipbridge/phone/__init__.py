"""The phone itself: its family's profile, sipbridge's credentials for it, its own REST API."""
