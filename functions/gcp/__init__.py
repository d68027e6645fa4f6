"""Google Cloud Functions (gen2 / Cloud Run functions) entry points: see ``main.py``."""
