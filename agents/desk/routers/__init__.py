"""The desk's routes, one router per concern."""
