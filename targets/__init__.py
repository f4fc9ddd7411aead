"""Back ends: each compiles the IR into files for one orchestrator."""
