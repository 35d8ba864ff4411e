"""Import of the authors' published SpeechCLIP / SpeechCLIP+ Lightning checkpoints (issue #6)."""
