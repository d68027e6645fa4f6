"""restorefn core: schemas, provider adapters, the restore service and event sinks.

Importing this package (or any module in it) imports neither cloud SDK: each provider's SDK is
loaded the first time a request for that provider is handled, so a function pays only for the
provider it actually serves.
"""
