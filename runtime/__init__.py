"""The pipespec runtime (content-addressed cache, local execution).  Not built yet."""
