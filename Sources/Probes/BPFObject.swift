import CLibBPF
import Dispatch
import Glibc
import HostFacts
import Logging

/// How an object is opened.
public struct BPFOpenOptions: Sendable, Equatable {
    /// A BTF file for CO-RE relocations instead of the kernel's (`btf_custom_path`).
    public var btfPath: String?
    /// When set, only these programs are loaded (and attached); the others are left out.
    public var programs: Set<String>?

    public init(btfPath: String? = nil, programs: Set<String>? = nil) {
        self.btfPath = btfPath
        self.programs = programs
    }
}

/// One BPF ELF object opened with libbpf: its programs, maps, links and ring-buffer pollers.
///
/// Not `Sendable`: it wraps libbpf's `struct bpf_object *`, which is not thread-safe, so one
/// task owns it from open to close. `close()` (also run by `deinit`) stops the pollers,
/// destroys every link and closes the object, so nothing stays loaded; the kernel releases
/// programs whose last file descriptor closes, which also covers a process killed outright.
public final class BPFObject {
    /// The object's name (the probe's name for embedded objects).
    public let name: String
    private var handle: OpaquePointer?
    private var links: [(program: String, link: OpaquePointer)] = []
    private var pollers: [RingBufferPoller] = []
    /// Whether `load()` succeeded.
    public private(set) var isLoaded = false

    /// Opens an ELF object from memory (libbpf copies what it needs while opening).
    public init(name: String, bytes: UnsafeRawBufferPointer, options: BPFOpenOptions = .init()) throws(BPFError) {
        self.name = name
        var opts = bpf_object_open_opts()
        opts.sz = MemoryLayout<bpf_object_open_opts>.size
        let result: (OpaquePointer?, Int32)
        let lines: [String]
        (result, lines) = LibBPFLog.capturing {
            name.withCString { cName in
                withOptionalCString(options.btfPath) { cBTF in
                    opts.object_name = cName
                    opts.btf_custom_path = cBTF
                    errno = 0
                    let object = bpf_object__open_mem(bytes.baseAddress, bytes.count, &opts)
                    return (object, errno)
                }
            }
        }
        guard let object = result.0 else {
            throw .open(object: name, errno: result.1 == 0 ? EINVAL : result.1, message: LibBPFLog.lastMessage(lines))
        }
        handle = object
        if let wanted = options.programs {
            for program in programNames {
                guard let prog = bpf_object__find_program_by_name(object, program) else { continue }
                bpf_program__set_autoload(prog, wanted.contains(program))
            }
        }
    }

    /// Opens one of the objects embedded in the binary.
    public convenience init(embedded: EmbeddedObject, options: BPFOpenOptions = .init()) throws(BPFError) {
        try self.init(name: embedded.name, bytes: embedded.bytes, options: options)
    }

    deinit { close() }

    private func object() throws(BPFError) -> OpaquePointer {
        guard let handle else { throw .closed(object: name) }
        return handle
    }

    /// Every program in the object, in ELF order.
    public var programNames: [String] {
        guard let handle else { return [] }
        var names: [String] = []
        var prog = bpf_object__next_program(handle, nil)
        while let p = prog {
            names.append(String(cString: bpf_program__name(p)))
            prog = bpf_object__next_program(handle, p)
        }
        return names
    }

    /// Every map the object defines (including libbpf's internal .rodata/.bss, if any).
    public var mapNames: [String] {
        guard let handle else { return [] }
        var names: [String] = []
        var map = bpf_object__next_map(handle, nil)
        while let m = map {
            names.append(String(cString: bpf_map__name(m)))
            map = bpf_object__next_map(handle, m)
        }
        return names
    }

    /// The programs that will be (or were) loaded.
    public var autoloadedPrograms: [String] {
        guard let handle else { return [] }
        return programNames.filter { name in
            bpf_object__find_program_by_name(handle, name).map { bpf_program__autoload($0) } ?? false
        }
    }

    /// Chooses whether `program` is loaded; only before `load()`.
    public func setAutoload(_ program: String, _ enabled: Bool) throws(BPFError) {
        guard let prog = bpf_object__find_program_by_name(try object(), program) else {
            throw .notFound(object: name, name: program)
        }
        bpf_program__set_autoload(prog, enabled)
    }

    /// Performs CO-RE relocations, creates the maps and loads the programs into the kernel.
    public func load() throws(BPFError) {
        let object = try object()
        let (status, lines) = LibBPFLog.capturing { () -> Int32 in
            let rc = bpf_object__load(object)
            return rc < 0 ? -rc : 0
        }
        guard status == 0 else {
            throw .load(
                object: name, program: LibBPFLog.failedProgram(lines), errno: status,
                message: LibBPFLog.lastMessage(lines), verifierLog: LibBPFLog.verifierLogTail(lines))
        }
        isLoaded = true
        LibBPFLog.logger.debug(
            "loaded BPF object", metadata: ["object": "\(name)", "programs": "\(autoloadedPrograms)"])
    }

    /// Attaches `programs` (default: every loaded program that names its own target; uprobes
    /// without one are attached per file with `attachUprobe`). Programs already attached are kept.
    public func attach(_ programs: [String]? = nil) throws(BPFError) {
        let object = try object()
        let defaults = autoloadedPrograms.filter { !needsUprobeTarget($0) }
        for program in programs ?? defaults where !links.contains(where: { $0.program == program }) {
            guard let prog = bpf_object__find_program_by_name(object, program) else {
                throw .notFound(object: name, name: program)
            }
            let ((link, code), lines) = LibBPFLog.capturing { () -> (OpaquePointer?, Int32) in
                errno = 0
                let link = bpf_program__attach(prog)
                return (link, errno)
            }
            guard let link else {
                throw .attach(
                    object: name, program: program, errno: code == 0 ? EINVAL : code,
                    message: LibBPFLog.lastMessage(lines))
            }
            links.append((program, link))
        }
    }

    /// Whether `program` is a uprobe or a USDT probe without a target in its section name
    /// (`SEC("uprobe")`, `SEC("usdt")`).
    public func needsUprobeTarget(_ program: String) -> Bool {
        guard let handle, let prog = bpf_object__find_program_by_name(handle, program),
            let section = bpf_program__section_name(prog)
        else { return false }
        let name = String(cString: section)
        return name == "uprobe" || name == "uretprobe" || name == "usdt"
    }

    /// Attaches the uprobe (or uretprobe) `program` to `function` of the ELF file at `binaryPath`,
    /// for every process (pid -1). libbpf finds the function's offset in the file's symbols and
    /// the kernel resolves the path to its inode: the same path serves both. The link is the
    /// caller's to destroy (`BPFObject.destroy`); closing the object does not detach it.
    public func attachUprobe(
        _ program: String, binaryPath: String, function: String, retprobe: Bool
    ) throws(BPFError) -> OpaquePointer {
        try link(program) { prog in
            binaryPath.withCString { cPath in
                function.withCString { cFunction in
                    var opts = bpf_uprobe_opts()
                    opts.sz = MemoryLayout<bpf_uprobe_opts>.size
                    opts.func_name = cFunction
                    opts.retprobe = retprobe
                    return bpf_program__attach_uprobe_opts(prog, -1, cPath, 0, &opts)
                }
            }
        }
    }

    /// Attaches the USDT program `program` (`SEC("usdt")`) to the probe `provider:probe` of the
    /// ELF file at `binaryPath`, for every process that maps it (libbpf reads the file's
    /// `.note.stapsdt` notes, attaches one uprobe per call site and lets the kernel count the
    /// probe's semaphore up in each process). Returns the link; the caller destroys it. libbpf
    /// says ENOENT when the file has no such probe.
    public func attachUSDT(
        _ program: String, binaryPath: String, provider: String, probe: String
    ) throws(BPFError) -> OpaquePointer {
        try link(program) { prog in
            binaryPath.withCString { cPath in
                provider.withCString { cProvider in
                    probe.withCString { cProbe in bpf_program__attach_usdt(prog, -1, cPath, cProvider, cProbe, nil) }
                }
            }
        }
    }

    /// The link `attach` makes for `program`, with libbpf's messages captured: the error says
    /// libbpf's errno and its last message.
    private func link(_ program: String, _ attach: (OpaquePointer) -> OpaquePointer?) throws(BPFError) -> OpaquePointer
    {
        guard let prog = bpf_object__find_program_by_name(try object(), program) else {
            throw .notFound(object: name, name: program)
        }
        let ((link, code), lines) = LibBPFLog.capturing { () -> (OpaquePointer?, Int32) in
            errno = 0
            let link = attach(prog)
            return (link, errno)
        }
        guard let link else {
            throw .attach(
                object: name, program: program, errno: code == 0 ? EINVAL : code,
                message: LibBPFLog.lastMessage(lines))
        }
        return link
    }

    /// The names of the attached programs.
    public var attachedPrograms: [String] { links.map(\.program) }

    /// Detaches every program (the object stays loaded; maps stay readable).
    public func detach() {
        BPFObject.destroy(releaseLinks())
    }

    /// Stops the pollers and hands the links over for destruction (to destroy several objects'
    /// links together).
    func releaseLinks() -> [OpaquePointer] {
        for poller in pollers { poller.stop() }
        let released = links.map(\.link)
        links.removeAll()
        return released
    }

    /// Destroys links in parallel: detaching a tracepoint waits for an RCU grace period (tens of
    /// milliseconds each here), and concurrent waits share grace periods. The pointers cross to
    /// other threads as integers: each link is destroyed exactly once, by one thread, and libbpf
    /// links are independent of each other.
    static func destroy(_ links: [OpaquePointer]) {
        guard links.count > 1 else {
            for link in links { bpf_link__destroy(link) }
            return
        }
        let group = DispatchGroup()
        for address in links.map({ UInt(bitPattern: Int(bitPattern: UnsafeRawPointer($0))) }) {
            group.enter()
            DispatchQueue.global().async {
                if let link = OpaquePointer(bitPattern: address) { bpf_link__destroy(link) }
                group.leave()
            }
        }
        group.wait()
    }

    /// Stops the pollers, detaches, and unloads everything. Idempotent.
    public func close() {
        detach()
        pollers.removeAll()
        if let handle {
            bpf_object__close(handle)
            self.handle = nil
            isLoaded = false
        }
    }

    /// A map by name.
    public func map(_ mapName: String) throws(BPFError) -> BPFMap {
        guard let map = bpf_object__find_map_by_name(try object(), mapName) else {
            throw .notFound(object: name, name: mapName)
        }
        return BPFMap(map: map, name: mapName, owner: self)
    }

    /// The kernel's ids of the loaded programs, by name (for checking that they are gone later).
    public var programIDs: [String: UInt32] {
        guard let handle, isLoaded else { return [:] }
        var ids: [String: UInt32] = [:]
        for program in autoloadedPrograms {
            guard let prog = bpf_object__find_program_by_name(handle, program) else { continue }
            let fd = bpf_program__fd(prog)
            if fd >= 0, let info = BPFSystem.programInfo(fd: fd) { ids[program] = info.id }
        }
        return ids
    }

    /// Starts polling the ring buffer `mapName`; its records arrive on the returned sequence, which
    /// ends when the object is detached or closed.
    public func ringBuffer(_ mapName: String) throws(BPFError) -> RingBufferEvents {
        let map = try self.map(mapName)
        let (stream, continuation) = AsyncStream.makeStream(of: [UInt8].self, bufferingPolicy: .bufferingNewest(4096))
        let poller = try RingBufferPoller(mapFD: map.fd, mapName: mapName, continuation: continuation)
        pollers.append(poller)
        poller.start()
        return RingBufferEvents(stream: stream)
    }
}

/// Runs `body` with `text` as a C string, or nil.
private func withOptionalCString<T>(_ text: String?, _ body: (UnsafePointer<CChar>?) -> T) -> T {
    guard let text else { return body(nil) }
    return text.withCString { body($0) }
}
