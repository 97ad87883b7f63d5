"""Alerts: spike detection on news, one alert record for spikes and escalations, and their delivery."""
