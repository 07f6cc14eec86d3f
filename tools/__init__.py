"""Developer tools: the demo, generators of docs/cli.md and completions/*, benchmarks."""
