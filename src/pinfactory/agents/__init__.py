"""Teams of agents on the pipeline: every agent step is one routed, costed, audited request.

- :mod:`~pinfactory.agents.spec`: the agents file (roles, protocol, termination, switches)
- :mod:`~pinfactory.agents.blackboard`: typed posts every agent reads and writes
- :mod:`~pinfactory.agents.protocols`: sequential, round-robin, selector, debate, handoff
- :mod:`~pinfactory.agents.runner`: runs, checkpoints and resumes a run
- :mod:`~pinfactory.agents.aggregation`: majority, confidence-weighted, judge
- :mod:`~pinfactory.agents.detectors`: failure and drift events by MAST code
- :mod:`~pinfactory.agents.synergy`: mutual information, PID, O-information
- :mod:`~pinfactory.agents.compounding`: how unsupported claims compound through chains
"""

from pinfactory.agents.runner import AgentRunner, run_agents
from pinfactory.agents.spec import AgentsFile, AgentSpec, AgentsSpec, load_agents, parse_agents
from pinfactory.agents.state import LedgerRunStore, MemoryRunStore, RunState, Step

__all__ = [
    "AgentRunner",
    "AgentSpec",
    "AgentsFile",
    "AgentsSpec",
    "LedgerRunStore",
    "MemoryRunStore",
    "RunState",
    "Step",
    "load_agents",
    "parse_agents",
    "run_agents",
]
