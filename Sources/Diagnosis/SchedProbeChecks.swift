import Checks
import PGNodeModel
import Probes

/// The sched probe's window feeds no observation of its own: its neighbours are part of
/// `cpu.contention`, a window check that `ContainerDiagnosis` evaluates for every container
/// (`CPUContentionFactsReader.neighbours` reads `results.sched`), with the probe or without it.
extension SchedProbe: ProbeCheckFeeding {
    public static func observations(slot: Int, _ context: ProbeCheckContext) -> [Observation] { [] }
}
