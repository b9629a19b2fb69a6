import Glibc

/// The uprobes of one loaded object, attached per library file: `update(libraries:)` attaches
/// the programs to every library not yet attached and detaches those no longer wanted.
///
/// A library is attached whole or not at all (every function, entry and return, except optional
/// functions it lacks), and one library's failure never touches the others' attachments. Libraries are told apart by the
/// device and inode of the mapped file, so containers of one image share one attachment.
///
/// Not `Sendable`: it owns libbpf links; the probe session that owns the object drives it.
/// `detachAll()` (also run by `deinit`) destroys every link.
public final class UprobeAttachments {
    /// One program and the place in the file it is attached to: a function (entry or return), or
    /// a USDT probe (`provider:name`, every call site of it).
    public struct Function: Sendable, Equatable {
        /// The program's name in the object.
        public var program: String
        /// The function's symbol in the file, or the USDT probe's name.
        public var symbol: String
        /// Whether the program runs at the function's return (a uretprobe).
        public var retprobe: Bool
        /// Whether a file without the symbol (or the probe) is attached without it.
        public var optional: Bool
        /// The USDT provider when `symbol` names a USDT probe, nil for a function.
        public var provider: String?

        public init(program: String, symbol: String, retprobe: Bool, optional: Bool = false) {
            self.program = program
            self.symbol = symbol
            self.retprobe = retprobe
            self.optional = optional
        }

        /// A function whose program is a name generated from its object (`ProbeObjectNames.swift`).
        public init(program: some BPFProgramName, symbol: String, retprobe: Bool, optional: Bool = false) {
            self.init(program: program.rawValue, symbol: symbol, retprobe: retprobe, optional: optional)
        }

        /// The USDT probe `provider:probe`, its program a name generated from its object.
        public static func usdt(
            program: some BPFProgramName, provider: String, probe: String, optional: Bool = false
        ) -> Function {
            var function = Function(program: program, symbol: probe, retprobe: false, optional: optional)
            function.provider = provider
            return function
        }

        /// `provider:probe` for a USDT probe, the symbol for a function.
        public var site: String { provider.map { "\($0):\(symbol)" } ?? symbol }
    }

    /// Why one library could not be attached.
    public struct Failure: Error, Sendable, Equatable, CustomStringConvertible {
        /// What went wrong.
        public enum Reason: Sendable, Equatable {
            /// The file could not be opened inside the container, or is not the mapped file.
            case open(LibraryFileError)
            /// libbpf or the kernel refused a program: a missing symbol (libbpf's message says
            /// so), or the attach's errno.
            case attach(symbol: String, BPFError)
        }

        /// The library.
        public var library: LibraryFile
        /// Why.
        public var reason: Reason

        public var description: String {
            switch reason {
            case .open(let error): "\(library): \(error)"
            case .attach(let site, let error) where site.contains(":") && error.errno == ENOENT:
                "\(library): no USDT probe \(site) in this file (built without --enable-dtrace)"
            case .attach(let symbol, let error): "\(library): \(symbol): \(error)"
            }
        }
    }

    private let object: BPFObject
    private let functions: [Function]
    private var attached: [LibraryFile.Identity: (library: LibraryFile, links: [OpaquePointer])] = [:]

    /// Attachments of `functions` of `object` (loaded); nothing is attached until `update`.
    public init(object: BPFObject, functions: [Function]) {
        self.object = object
        self.functions = functions
    }

    deinit { detachAll() }

    /// The libraries attached now.
    public var libraries: [LibraryFile] { attached.values.map(\.library) }

    /// How many links are attached (every function of every library).
    public var linkCount: Int { attached.values.reduce(0) { $0 + $1.links.count } }

    /// Attaches to every library of `libraries` not yet attached and detaches the attached ones
    /// that are not in it. Returns what failed, by library; the libraries that failed stay
    /// unattached and are tried again by the next update.
    ///
    /// One file (device and inode) may come several times, through the roots of several
    /// containers or processes: it is opened through the first of them that still opens (a root
    /// is reached through a pid, and a process may exit between the reading of its `maps` and the
    /// attach), so one gone process does not leave the others' file unprobed. Only when none opens
    /// is it a failure, the last root's; a refused attach (a missing symbol) is the file's and
    /// final for this update.
    @discardableResult
    public func update(libraries: [LibraryFile]) -> [Failure] {
        var wanted: [LibraryFile.Identity: [LibraryFile]] = [:]
        var order: [LibraryFile.Identity] = []
        for library in libraries {
            if wanted[library.identity] == nil { order.append(library.identity) }
            if wanted[library.identity]?.contains(library) != true {
                wanted[library.identity, default: []].append(library)
            }
        }
        let gone = attached.keys.filter { wanted[$0] == nil }
        BPFObject.destroy(gone.flatMap { attached.removeValue(forKey: $0)?.links ?? [] })

        var failures: [Failure] = []
        for identity in order where attached[identity] == nil {
            var failure: Failure?
            candidates: for library in wanted[identity]! {
                switch attach(library) {
                case .success(let links):
                    attached[identity] = (library, links)
                    failure = nil
                    break candidates
                case .failure(let failed):
                    failure = failed
                    if case .attach = failed.reason { break candidates }
                }
            }
            if let failure { failures.append(failure) }
        }
        return failures
    }

    /// Opens `library` inside its root and attaches every function through `/proc/self/fd/<n>`
    /// (libbpf reads the symbols and the kernel resolves the inode from that path, so both see
    /// exactly the file opened). The descriptor is closed once the links exist: a uprobe holds
    /// the inode, not the file.
    ///
    /// Overlayfs (a container image's layers): the perf `uprobe` PMU's create_local_trace_uprobe
    /// resolves the path with kern_path(LOOKUP_FOLLOW), and trace_uprobe_enable registers the
    /// uprobe on d_real_inode() of that dentry (kernel/trace/trace_uprobe.c, 4.17 to 6.x), the
    /// layer's inode that the page cache and every process's mapping of the file share. So a
    /// path through the overlay traps the containers that map the file; it also traps every
    /// other container whose overlay shows the same lower file.
    private func attach(_ library: LibraryFile) -> Result<[OpaquePointer], Failure> {
        let fd: Int32
        do throws(LibraryFileError) {
            fd = try library.open()
        } catch {
            return .failure(Failure(library: library, reason: .open(error)))
        }
        defer { close(fd) }
        let path = "/proc/self/fd/\(fd)"
        var links: [OpaquePointer] = []
        for function in functions {
            do throws(BPFError) {
                if let provider = function.provider {
                    links.append(
                        try object.attachUSDT(
                            function.program, binaryPath: path, provider: provider, probe: function.symbol))
                } else {
                    links.append(
                        try object.attachUprobe(
                            function.program, binaryPath: path, function: function.symbol, retprobe: function.retprobe))
                }
            } catch {
                // libbpf says ENOENT when the file has no such symbol (or USDT probe).
                if function.optional && error.errno == ENOENT { continue }
                BPFObject.destroy(links)
                return .failure(Failure(library: library, reason: .attach(symbol: function.site, error)))
            }
        }
        return .success(links)
    }

    /// Hands every link over for destruction (to destroy them together with other links) and
    /// forgets the libraries.
    func releaseLinks() -> [OpaquePointer] {
        let links = attached.values.flatMap(\.links)
        attached.removeAll()
        return links
    }

    /// Detaches from every library.
    public func detachAll() {
        BPFObject.destroy(releaseLinks())
    }
}
