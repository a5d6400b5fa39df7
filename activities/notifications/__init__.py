"""Notifications: the message the workflow builds and the channels that deliver it."""
