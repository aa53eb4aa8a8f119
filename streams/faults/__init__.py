"""The fault harness (`referral-rewards faults`, `make faults`): kill -9 under load, then verify.

Public surface: `FaultPlan` (what to do), `run_faults` (do it), `FaultReport` (what it found).
"""

from streams.faults.harness import FaultPlan, FaultReport, run_faults

__all__ = ["FaultPlan", "FaultReport", "run_faults"]
