"""The Qt desktop app: a thin layer of widgets, models/views and workers over core.service.SearchService."""
