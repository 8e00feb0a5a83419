"""Lambda on one machine: handlers run as processes, fed by SQS pollers or invoked once."""
