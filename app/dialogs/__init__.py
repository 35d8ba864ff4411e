"""Dialogs: index progress, library folders, settings, about."""
