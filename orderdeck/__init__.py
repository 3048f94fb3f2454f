"""orderdeck: an order-processing pipeline on Apache Kafka with a terminal control center."""

__version__ = "0.1.0"
