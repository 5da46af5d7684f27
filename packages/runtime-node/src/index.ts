/**
 * @tributary/runtime-node: the Kinesis worker runtime — a long-running Node process that runs a
 * pipeline, unchanged, on the shards of a Kinesis stream it consumes itself (shard leases,
 * checkpoints, resharding, graceful shutdown). It exports nothing yet; the `tributary` command
 * is in @tributary/cli.
 */
export {};
