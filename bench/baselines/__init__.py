"""Hand-written minimal functions the bench compares ours against.

Each imports only the provider SDK it needs and calls it directly: no authentication, no
validation beyond reading the fields, no ledger, no events. They make the same number of provider
HTTP calls as our adapters (COS: HEAD then POST ?restore; GCS: one objects.restore with the
generation given), so a difference is what our code adds. Each is a deployable unit on its own
(duplication between them is deliberate), served the same way ours is.
"""
