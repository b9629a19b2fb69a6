import CLibBPF
import Glibc
import HostFacts
import OSSupport

/// Finds the BTF that CO-RE relocations use.
///
/// Order: `--btf FILE` when given (an explicit choice wins, also over the kernel's own); else
/// the kernel's `/sys/kernel/btf/vmlinux` under the host root; else `--btf-archive DIR` in
/// BTFHub-archive's layout, `<os-release ID>/<VERSION_ID>/<arch>/<release>.btf` or
/// `.btf.tar.xz` (extracted with `tar -xJ`, i.e. the `xz` program, into a temporary directory
/// that `cleanup()` removes); else none, and `kernel.btf` is critical.
public struct BTFResolution: Sendable, Equatable {
    /// The BTF to use, if any.
    public var location: BTFLocation?
    /// Why none was found, or why a candidate was unusable.
    public var problem: String?
    /// Archive paths that were tried, for the finding's evidence.
    public var searched: [String]
    /// A temporary directory holding an extracted archive member.
    public var temporaryDirectory: String?

    /// Removes the extracted copy, if any.
    public func cleanup() {
        if let temporaryDirectory { FileTree.remove(temporaryDirectory) }
    }

    /// Whether libbpf is given a custom BTF path (the kernel's own BTF needs none).
    public var customPath: String? {
        guard let location, location.origin != .kernel else { return nil }
        return location.path
    }
}

public enum BTFResolver {
    /// BTFHub-archive's name for an architecture (`uname -m` → `x86_64`, `arm64`).
    public static func archiveArchitecture(_ machine: String) -> String {
        switch machine {
        case "aarch64", "arm64": "arm64"
        case "x86_64", "amd64": "x86_64"
        default: machine
        }
    }

    /// The archive candidates for this node, `.btf` first.
    public static func archiveCandidates(archive: String, facts: KernelFacts) -> [String] {
        guard let id = facts.os.id, let version = facts.os.versionID, let release = facts.release else { return [] }
        let base = "\(archive)/\(id)/\(version)/\(archiveArchitecture(facts.architecture))/\(release)"
        return [base + ".btf", base + ".btf.tar.xz"]
    }

    /// Resolves the BTF; `option` and `archive` are paths in pgnode's own file system.
    public static func resolve(host: HostRoot, facts: KernelFacts, option: String?, archive: String?) -> BTFResolution {
        if let option {
            if access(option, R_OK) == 0 {
                // Still handed to libbpf when unparsable: the probes then say what libbpf makes of it.
                return BTFResolution(
                    location: BTFLocation(path: option, origin: .option), problem: parseProblem(option), searched: [])
            }
            return BTFResolution(problem: "--btf \(option) is not a readable file", searched: [])
        }
        if let btf = facts.btf {
            return BTFResolution(location: BTFLocation(path: host.resolve(btf.path), origin: .kernel), searched: [])
        }
        guard let archive else {
            return BTFResolution(
                problem: "the kernel has no BTF and neither --btf nor --btf-archive was given", searched: [])
        }
        let candidates = archiveCandidates(archive: archive, facts: facts)
        if candidates.isEmpty {
            return BTFResolution(
                problem:
                    "cannot look up --btf-archive: the node's os-release ID/VERSION_ID or kernel release is unknown",
                searched: [])
        }
        for candidate in candidates where access(candidate, F_OK) == 0 {
            if candidate.hasSuffix(".btf") {
                return BTFResolution(
                    location: BTFLocation(path: candidate, origin: .archive, source: candidate),
                    problem: parseProblem(candidate), searched: candidates)
            }
            do {
                let (path, directory) = try extract(candidate, member: (facts.release ?? "") + ".btf")
                return BTFResolution(
                    location: BTFLocation(path: path, origin: .archive, source: candidate), problem: parseProblem(path),
                    searched: candidates, temporaryDirectory: directory)
            } catch {
                return BTFResolution(problem: "\(candidate): \(error)", searched: candidates)
            }
        }
        return BTFResolution(problem: "no BTF for this kernel in --btf-archive \(archive)", searched: candidates)
    }

    /// Why libbpf cannot parse `path` as BTF, or nil when it can.
    public static func parseProblem(_ path: String) -> String? {
        let ((btf, code), lines) = LibBPFLog.capturing { () -> (OpaquePointer?, Int32) in
            errno = 0
            let btf = btf__parse(path, nil)
            return (btf, errno)
        }
        guard let btf else {
            let detail = LibBPFLog.lastMessage(lines)
            return "libbpf cannot parse \(path) as BTF: \(BPFError.describe(code == 0 ? EINVAL : code))"
                + (detail.isEmpty ? "" : " (\(detail))")
        }
        btf__free(btf)
        return nil
    }

    struct ExtractionError: Error, CustomStringConvertible {
        var description: String
    }

    /// Extracts `member` of a `.tar.xz` into a new temporary directory.
    static func extract(_ archive: String, member: String) throws -> (path: String, directory: String) {
        guard let directory = FileTree.makeTemporaryDirectory(prefix: "pgnode-btf-") else {
            throw ExtractionError(
                description: "cannot create a temporary directory: \(String(cString: strerror(errno)))")
        }
        let outcome: ChildProcess.Outcome
        do {
            outcome = try ChildProcess.run(["tar", "-xJf", archive, "-C", directory])
        } catch {
            FileTree.remove(directory)
            throw ExtractionError(description: "cannot run tar: \(error)")
        }
        guard outcome.status == 0 else {
            FileTree.remove(directory)
            throw ExtractionError(
                description: "tar -xJ failed (\(outcome.status)): \(outcome.standardError.trimmingWhitespace())")
        }
        // BTFHub's archives hold `<release>.btf`; accept any single .btf member otherwise.
        let direct = directory + "/" + member
        if access(direct, F_OK) == 0 { return (direct, directory) }
        let found = FileTree.files(under: directory).filter { $0.hasSuffix(".btf") }
        if found.count == 1 { return (directory + "/" + found[0], directory) }
        FileTree.remove(directory)
        throw ExtractionError(description: "the archive holds no \(member)")
    }
}
