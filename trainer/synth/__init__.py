"""Offline spoken-scenes generator: scenes, captions, TTS voices, manifest."""
