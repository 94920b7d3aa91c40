"""The Nomad adapter: jobs, allocations, Variables (and locks), and the event stream source."""
