"""Carrier: deliver every SQS message as an HTTP POST to a worker's webhook."""

__version__ = "0.1.0"
