import PGNodeModel
import Synchronization

@testable import Shipping

/// Findings for the shipping tests: a node finding and container findings with varied evidence.
enum Sample {
    static let node = ResourceAttributes(nodeName: "node-1")

    static func container(_ n: Int, namespace: String? = "prod", pod: String? = "db-0") -> ResourceAttributes {
        ResourceAttributes(
            nodeName: "node-1", containerID: String(repeating: String(n % 10), count: 64),
            containerRuntime: "containerd",
            podName: pod, podUID: "uid-\(n)", namespace: namespace, containerName: "postgres")
    }

    /// A finding; `window` makes distinct ids.
    static func finding(
        _ check: String = "shm.size", _ severity: Severity = .warning, resource: ResourceAttributes = node,
        window: Int64 = 0, timeNanos: Int64 = 1_764_118_613_173_000_000,
        evidence: JSONObject = ["size_bytes": 67_108_864]
    ) -> Finding {
        Finding(
            observation: Observation(
                check: check, severity: severity, summary: "\(check) is \(severity.rawValue).", evidence: evidence,
                remedy: "Do something about \(check)."),
            resource: resource, windowStart: Timestamp(nanoseconds: window), time: Timestamp(nanoseconds: timeNanos))
    }

    /// `count` distinct findings (ids differ by window).
    static func many(_ count: Int, start: Int64 = 0) -> [Finding] {
        (0..<count).map { i in
            finding(
                i % 2 == 0 ? "shm.size" : "memory.limit", i % 3 == 0 ? .critical : .info,
                resource: container(i % 3), window: start + Int64(i),
                timeNanos: 1_764_118_613_000_000_000 + (start + Int64(i)) * 1_000_000)
        }
    }

    static func records(_ findings: [Finding]) -> [FindingRecord] { findings.map(FindingRecord.init) }
}

/// A reader that fails its next `failures` reads with `code`, then reads the file system.
final class FailingReader: Sendable {
    let failures: Mutex<Int>
    let code: Int32
    let calls = Mutex(0)

    init(failures: Int, code: Int32) {
        self.failures = Mutex(failures)
        self.code = code
    }

    func fail(next count: Int) { failures.withLock { $0 = count } }

    var reader: SpoolReader {
        SpoolReader { path, limit throws(FileError) in
            self.calls.withLock { $0 += 1 }
            let fail = self.failures.withLock { (left: inout Int) -> Bool in
                guard left > 0 else { return false }
                left -= 1
                return true
            }
            if fail { throw FileError(operation: "open \(path)", code: self.code) }
            return try SpoolReader.fileSystem.readPrefix(path, limit)
        }
    }
}
