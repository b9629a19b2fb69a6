import HostFacts
import PGNodeModel

/// `kernel.thp`: do the node's transparent huge page settings make PostgreSQL's page faults wait?
/// PostgreSQL never calls `madvise(MADV_HUGEPAGE)`, so only `enabled=always` gives its memory
/// (backends' private memory, and with it sorts and hashes) huge pages at fault; with
/// `defrag=always` too, a fault that finds no free 2 MiB page stops in direct reclaim and
/// compaction until one is made — stalls of milliseconds to seconds in whichever backend touched
/// new memory, the latency spikes the PostgreSQL community's "disable THP" advice is about.
public enum TransparentHugePageCheck {
    /// The check id.
    public static let id = "kernel.thp"

    /// The observation for the node.
    public static func evaluate(_ facts: TransparentHugePages) -> Observation {
        observe(facts).flaggingSaturatedValues()
    }

    static func observe(_ facts: TransparentHugePages) -> Observation {
        let path = "/" + TransparentHugePages.directory
        guard let configured = facts.configured else {
            return .unavailable(
                check: id, reason: "cannot read the kernel's memory settings: \(facts.problems.joined(separator: "; "))"
            )
        }
        guard configured else {
            return Observation(
                check: id, severity: .ok,
                summary: "The kernel has no transparent huge pages (\(path) does not exist); no fault waits for one.",
                evidence: ["path": .string(path), "configured": false])
        }
        guard let enabled = facts.enabled, let defrag = facts.defrag else {
            return .unavailable(
                check: id, reason: facts.problems.joined(separator: "; "), evidence: ["path": .string(path)])
        }
        let shmem = facts.shmemEnabled?.selected
        let evidence: JSONObject = [
            "enabled": .string(enabled.selected), "defrag": .string(defrag.selected), "shmem_enabled": .from(shmem),
            "path": .string(path),
        ]
        let settings =
            "enabled=\(enabled.selected), defrag=\(defrag.selected)"
            + (shmem.map { ", shmem_enabled=\($0)" } ?? "")
        if enabled.selected == "always" && defrag.selected == "always" {
            return Observation(
                check: id, severity: .warning,
                summary:
                    "Transparent huge pages are \(settings): PostgreSQL's memory gets huge pages without asking, "
                    + "and a page fault that finds no free one waits for reclaim and compaction.",
                evidence: evidence,
                remedy:
                    "On the node pool, set enabled to madvise (or never): the boot parameter "
                    + "transparent_hugepage=madvise, `echo madvise > \(path)/enabled` at boot from a privileged "
                    + "DaemonSet, or a tuned profile ([vm] transparent_hugepages=madvise); or keep enabled=always "
                    + "with defrag=defer+madvise, so that faults no longer wait. Neither can be set from the "
                    + "PostgreSQL pod. For huge pages where they help, give the server huge_pages=on and a "
                    + "hugepages-2Mi resource instead.")
        }
        let why: String
        switch enabled.selected {
        case "always":
            why =
                "PostgreSQL's memory gets huge pages when one is free, but a fault never waits for reclaim "
                + "or compaction to make one"
        case "madvise", "never":
            why = "PostgreSQL, which never madvises, gets no transparent huge pages and no fault waits for one"
        default:
            why = "only enabled=always with defrag=always makes PostgreSQL's page faults wait for compaction"
        }
        return Observation(
            check: id, severity: .ok, summary: "Transparent huge pages are \(settings): \(why).", evidence: evidence)
    }
}
