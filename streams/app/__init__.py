"""The live processor: the rules core wired to Kafka with Faust (the imperative shell)."""
