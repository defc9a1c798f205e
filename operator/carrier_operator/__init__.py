"""The CarrierBinding operator and the sidecar injector (one process, two faces)."""
