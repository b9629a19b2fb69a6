import Foundation
import Testing

/// A container started by `scripts/containers` for a test: PostgreSQL (`start`) or a command (`run`).
public struct PostgresContainer: Sendable {
    /// The name `scripts/containers` knows it by.
    public var name: String
    /// The full 64-hex container id.
    public var id: String
    /// The pod UID it was given.
    public var podUID: String
    /// The pod name.
    public var podName: String
    /// The namespace.
    public var namespace: String
    /// The container name.
    public var containerName: String
}

/// What to start: every option of `scripts/containers run-postgres`.
public struct PostgresContainerOptions: Sendable {
    /// The pod UID (default: a new UUID).
    public var podUID = UUID().uuidString.lowercased()
    /// The pod name.
    public var podName = "pg-\(UUID().uuidString.prefix(8).lowercased())"
    /// The namespace.
    public var namespace = "pgnode-test"
    /// The container name.
    public var containerName = "postgres"
    /// `burstable`, `besteffort` or `guaranteed`.
    public var qos = "burstable"
    /// A memory limit in bytes.
    public var memoryLimit: Int64?
    /// A CPU limit as a CFS quota and period in microseconds (`(50000, 100000)`: half a CPU).
    public var cpuLimit: (quotaMicroseconds: Int64, periodMicroseconds: Int64)?
    /// A tmpfs size for /dev/shm (e.g. `1g`) instead of the runtime's 64 MiB.
    public var shmSize: String?
    /// Extra mounts in ctr's syntax (`type=bind,src=/x,dst=/y,options=rbind:ro`).
    public var mounts: [String] = []
    /// Extra environment variables (`K=V`).
    public var environment: [String] = []
    /// Pass the data directory as PGDATA instead of -D.
    public var pgdataInEnvironment = false
    /// Extra arguments for `postgres` (e.g. `["-c", "work_mem=64MB"]`).
    public var postgresArguments: [String] = []

    /// Defaults.
    public init() {}
}

/// What to start with `Containers.run`: a command (not PostgreSQL) in a pod-shaped container.
public struct CommandContainerOptions: Sendable {
    /// The pod UID (default: a new UUID).
    public var podUID = UUID().uuidString.lowercased()
    /// The pod name.
    public var podName = "workload-0"
    /// The namespace.
    public var namespace = "pgnode-test"
    /// The container name.
    public var containerName = "workload"
    /// `burstable`, `besteffort` or `guaranteed`.
    public var qos = "burstable"
    /// Extra mounts in ctr's syntax (`type=bind,src=/x,dst=/y,options=rbind:rw`).
    public var mounts: [String] = []
    /// Extra environment variables (`K=V`).
    public var environment: [String] = []

    /// Defaults.
    public init() {}
}

/// Real containers for integration tests, through `scripts/containers` (containerd, runc and the
/// host's PostgreSQL 15). Tests start them with `withPostgres`, which removes them even when the
/// test fails.
public enum Containers {
    /// The script.
    public static var script: String { TestEnvironment.scriptPath("containers") }

    /// Why containers cannot run here, or nil when they can.
    public static var unavailableReason: String? {
        if !TestEnvironment.isRoot { return "root privileges" }
        for tool in ["/usr/bin/containerd", "/usr/bin/ctr", "/usr/sbin/runc", "/usr/lib/postgresql/15/bin/postgres"] {
            if !FileManager.default.isExecutableFile(atPath: tool) { return "\(tool) (run scripts/setup)" }
        }
        return nil
    }

    /// Whether containers can run; in CI a missing requirement is a test failure (see `TestEnvironment.require`).
    public static func available() -> Bool {
        TestEnvironment.require(unavailableReason == nil, "real containers: \(unavailableReason ?? "")")
    }

    /// Runs the script; throws with its stderr when it fails.
    @discardableResult
    public static func script(_ arguments: [String]) throws -> String {
        let result = try Command.run([script] + arguments)
        guard result.status == 0 else {
            throw ContainerError(message: "scripts/containers \(arguments.joined(separator: " ")): \(result.stderr)")
        }
        return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Starts a container named `name` (made unique) and waits until PostgreSQL accepts connections.
    public static func start(_ name: String, options: PostgresContainerOptions = PostgresContainerOptions()) throws
        -> PostgresContainer
    {
        let unique = "\(name)-\(UUID().uuidString.prefix(8).lowercased())"
        var arguments = [
            "run-postgres", unique, "--pod-uid", options.podUID, "--pod-name", options.podName, "--namespace",
            options.namespace, "--container-name", options.containerName, "--qos", options.qos,
        ]
        if let memory = options.memoryLimit { arguments += ["--memory-limit", String(memory)] }
        if let cpu = options.cpuLimit {
            arguments += ["--cpu-quota", String(cpu.quotaMicroseconds), "--cpu-period", String(cpu.periodMicroseconds)]
        }
        if let shm = options.shmSize { arguments += ["--shm-size", shm] }
        for mount in options.mounts { arguments += ["--mount", mount] }
        for variable in options.environment { arguments += ["--env", variable] }
        if options.pgdataInEnvironment { arguments.append("--pgdata-in-env") }
        if !options.postgresArguments.isEmpty { arguments += ["--"] + options.postgresArguments }
        let id: String
        do {
            id = try script(arguments)
        } catch {
            remove(unique)
            throw error
        }
        let container = PostgresContainer(
            name: unique, id: id, podUID: options.podUID, podName: options.podName, namespace: options.namespace,
            containerName: options.containerName)
        do {
            try waitUntilReady(container)
        } catch {
            remove(unique)
            throw error
        }
        return container
    }

    /// Waits until the server accepts connections.
    public static func waitUntilReady(_ container: PostgresContainer, timeout: Int = 30) throws {
        try script(["wait", container.name, String(timeout)])
    }

    /// Runs SQL through the container's socket.
    @discardableResult
    public static func psql(_ container: PostgresContainer, _ sql: String) throws -> CommandResult {
        try Command.run([script, "psql", container.name, "-At", "-c", sql])
    }

    /// The container's root file system on the host (to plant files in tests).
    public static func rootfs(_ container: PostgresContainer) throws -> String {
        try script(["rootfs", container.name])
    }

    /// Stops and removes a container and its files; never throws.
    public static func remove(_ name: String) {
        _ = try? Command.run([script, "rm", name])
    }

    /// Starts `command` (an absolute path from the host's /usr) in a new container named `name`
    /// (made unique) with `scripts/containers run`; the caller removes it with `remove`.
    public static func run(
        _ name: String, options: CommandContainerOptions = CommandContainerOptions(), command: [String]
    )
        throws -> PostgresContainer
    {
        let unique = "\(name)-\(UUID().uuidString.prefix(8).lowercased())"
        var arguments = [
            "run", unique, "--pod-uid", options.podUID, "--pod-name", options.podName, "--namespace", options.namespace,
            "--container-name", options.containerName, "--qos", options.qos,
        ]
        for mount in options.mounts { arguments += ["--mount", mount] }
        for variable in options.environment { arguments += ["--env", variable] }
        do {
            let id = try script(arguments + ["--"] + command)
            return PostgresContainer(
                name: unique, id: id, podUID: options.podUID, podName: options.podName, namespace: options.namespace,
                containerName: options.containerName)
        } catch {
            remove(unique)
            throw error
        }
    }

    /// What a container started with `run` wrote on its stdout and stderr so far.
    public static func console(_ container: PostgresContainer) -> String {
        let path =
            (ProcessInfo.processInfo.environment["PGNODE_CONTAINERS_DIR"] ?? "/var/tmp/pgnode-containers")
            + "/\(container.name)/console.log"
        return (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
    }

    /// Starts the containers, runs `body`, and removes them whatever happens.
    public static func withPostgres<T>(
        _ names: [(String, PostgresContainerOptions)], _ body: ([PostgresContainer]) throws -> T
    ) throws -> T {
        var started: [PostgresContainer] = []
        defer { for container in started { remove(container.name) } }
        for (name, options) in names { started.append(try start(name, options: options)) }
        return try body(started)
    }
}

/// A container could not be started or driven.
public struct ContainerError: Error, CustomStringConvertible {
    /// What went wrong.
    public var message: String
    public var description: String { message }
}
