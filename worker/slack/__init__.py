"""Slack's interactive buttons: signed requests in, decisions to the incident, replies out."""
