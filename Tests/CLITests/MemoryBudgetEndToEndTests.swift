import Foundation
import PGNodeModel
import TestSupport
import Testing

/// `memory.hugepages`, `memory.budget` and the `/dev/shm` remedy that agrees with the memory
/// limit, end to end: real PostgreSQL containers in containerd, the real pgnode binary.
@Suite(
    "memory budget and huge pages on real containers", .serialized, .enabled(if: TestEnvironment.privilegedTestsEnabled)
)
struct MemoryBudgetEndToEndTests {
    var canRun: Bool { Containers.available() }

    /// `pgnode check --duration 0` of `container`: check → finding.
    func check(_ container: PostgresContainer) throws -> [String: JSONValue] {
        let result = try Command.run([
            TestEnvironment.pgnodeBinary, "check", "--container", container.id, "--duration", "0", "--format", "json",
        ])
        #expect(result.status == 0, "pgnode: \(result.stderr)")
        var found: [String: JSONValue] = [:]
        for line in result.stdout.split(separator: "\n") where !line.isEmpty {
            let value = try JSONParser.parse(String(line))
            if value["resource"]?["container.id"]?.stringValue == container.id, let check = value["check"]?.stringValue
            {
                found[check] = value
            }
        }
        return found
    }

    @Test("huge_pages=try, shared_buffers=1GB on a node without a pool: the segment's 4 KiB pages, info")
    func hugePagesFallBack() throws {
        guard canRun else { return }
        let pool = try String(contentsOfFile: "/proc/meminfo", encoding: .utf8)
        try #require(pool.contains("HugePages_Total:       0"), "this test needs a node without a huge page pool")
        var options = PostgresContainerOptions()
        options.podName = "hugepages-try-0"
        options.postgresArguments = ["-c", "huge_pages=try", "-c", "shared_buffers=1GB"]
        try Containers.withPostgres([("hugepages-try", options)]) { containers in
            let found = try check(containers[0])
            let o = try #require(found["memory.hugepages"], "\(found.keys)")
            #expect(o["severity"] == "info", "\(o)")
            let evidence = try #require(o["evidence"])
            #expect(evidence["segment"]?["path"] == "/dev/zero", "\(evidence)")
            #expect(evidence["segment"]?["kernel_page_size_bytes"] == .int(4096), "\(evidence)")
            #expect((evidence["segment"]?["size_bytes"]?.intValue ?? 0) > 1 << 30, "\(evidence)")
            #expect(evidence["settings"]?["huge_pages"]?["value"] == "try")
            #expect(evidence["settings"]?["huge_pages"]?["source"] == "command line")
            #expect(evidence["hugetlb"] == .null)  // no hugetlb controller on this node's container
            #expect((evidence["page_tables_bytes"]?.intValue ?? 0) > 0, "\(evidence)")
            #expect((evidence["page_tables_processes"]?.intValue ?? 0) >= 5, "\(evidence)")
            #expect(o["summary"]?.stringValue?.contains("fell back to 4 KiB pages") == true, "\(o)")
            #expect(o["remedy"]?.stringValue?.contains("hugepages-2Mi") == true, "\(o)")
            print("memory.hugepages: \(JSONWriter.string(o))")
        }
    }

    @Test(
        "512 MiB limit, shared_buffers=256MB, work_mem=64MB, 100 connections: memory.budget warns; shm.size's remedy says the limit must grow"
    )
    func remediesAgree() throws {
        guard canRun else { return }
        var options = PostgresContainerOptions()
        options.podName = "budget-0"
        options.memoryLimit = 512 << 20
        options.postgresArguments = ["-c", "shared_buffers=256MB", "-c", "work_mem=64MB"]
        try Containers.withPostgres([("budget", options)]) { containers in
            let found = try check(containers[0])
            let budget = try #require(found["memory.budget"], "\(found.keys)")
            #expect(budget["severity"] == "warning", "\(budget)")
            #expect(budget["evidence"]?["limit_bytes"] == .int(512 << 20))
            #expect(budget["evidence"]?["terms"]?["connections"]?["count"] == .int(100))
            #expect(budget["evidence"]?["terms"]?["wal_buffers_bytes"] == .int(8 << 20))
            let size = try #require(found["shm.size"], "\(found.keys)")
            #expect(size["evidence"]?["recommended_shm_bytes"] == .int(1632 << 20), "\(size)")
            let remedy = size["remedy"]?.stringValue ?? ""
            #expect(remedy.contains("counts against the pod's memory limit"), "\(remedy)")
            #expect(remedy.contains("Raise the limit by 1536Mi to at least 2048Mi"), "\(remedy)")
            print("memory.budget: \(JSONWriter.string(budget))")
            print("shm.size: \(JSONWriter.string(size))")
        }
    }
}
