"""Deployment helpers run by ``deploy.sh`` (never shipped with the functions)."""
