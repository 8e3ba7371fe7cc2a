SELECT nope FROM logs
