/// A probe's uprobes on its targets' files — the C libraries for the shm probe, the server
/// executables for the query probe: nothing is attached before the probe is (`attach()`); each
/// change of the files (`update(files:)`) attaches the new ones and detaches those no longer
/// wanted (`UprobeAttachments`); a file that keeps failing is tried again at every update and
/// logged once.
///
/// Not `Sendable`: it owns libbpf links; the probe that owns it is driven by one task.
final class TargetFileUprobes {
    private let object: BPFObject
    private let functions: [UprobeAttachments.Function]
    /// What the log says was not attached ("shm uprobes").
    private let what: String
    private var attachments: UprobeAttachments?
    private var files: [LibraryFile] = []
    /// The files that failed at the last attach or update, with the reason.
    private(set) var failures: [UprobeAttachments.Failure] = []

    /// The uprobes of `functions` of `object`, logged as `what`.
    init(object: BPFObject, functions: [UprobeAttachments.Function], what: String) {
        self.object = object
        self.functions = functions
        self.what = what
    }

    /// Attaches to the files given so far (the probe's programs are attached now).
    func attach() {
        attachments = attachments ?? UprobeAttachments(object: object, functions: functions)
        refresh()
    }

    /// The targets' files now; attached at once when the probe is.
    func update(files: [LibraryFile]) {
        self.files = files
        refresh()
    }

    private func refresh() {
        guard let attachments else { return }
        let before = Set(failures.map(\.description))
        failures = attachments.update(libraries: files)
        for failure in failures where !before.contains(failure.description) {
            LibBPFLog.logger.warning("\(what) not attached", metadata: ["file": "\(failure)"])
        }
    }

    /// Hands every link over for destruction; nothing is attached afterwards until `attach()`.
    func releaseLinks() -> [OpaquePointer] {
        defer { attachments = nil }
        return attachments?.releaseLinks() ?? []
    }
}
