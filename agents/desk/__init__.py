"""The desk: a web app where people review reply drafts and alerts (``sentinel desk serve``)."""
