import HostFacts
import Probes
import Resolution

/// The C library files a container's PostgreSQL processes map: where the shm probe's uprobes go.
///
/// Read from `<host>/proc/<postmaster>/maps` (backends are forked from the postmaster and map the
/// same files): every mapped file whose name is a C library's — glibc's `libc.so.6` (or the older
/// `libc-2.NN.so`), musl's `ld-musl-<arch>.so.1`. The path is the one inside the container; it is
/// opened inside the container's root (`/proc/<pid>/root`) when the probes attach, and only if it
/// is still the file mapped there (`LibraryFile.open`). A statically linked server maps none: the
/// list is empty and the shm probe does not see that container.
public enum CLibraryFiles {
    /// Whether a mapped file's base name is a C library's.
    public static func isCLibrary(_ baseName: String) -> Bool {
        baseName == "libc.so.6" || (baseName.hasPrefix("libc-") && baseName.hasSuffix(".so"))
            || (baseName.hasPrefix("ld-musl-") && baseName.hasSuffix(".so.1"))
    }

    /// The C libraries mapped by process `pid`, one per file (device and inode), resolved in that
    /// process's root. Files deleted since they were mapped (an upgraded library) are left out:
    /// their path names another file now.
    public static func files(pid: Int32, host: HostRoot) -> [LibraryFile] {
        guard let maps = try? ProcessMaps.read(host: host, pid: pid) else { return [] }
        return files(in: maps, root: host.resolve("proc/\(pid)/root"))
    }

    /// The C libraries of `maps` (one process's), one per file, resolved in `root`.
    public static func files(in maps: [MappedFile], root: String) -> [LibraryFile] {
        var seen = Set<LibraryFile.Identity>()
        var files: [LibraryFile] = []
        for mapping in maps where !mapping.deleted && isCLibrary(mapping.baseName) {
            let identity = LibraryFile.Identity(
                major: mapping.deviceMajor, minor: mapping.deviceMinor, inode: mapping.inode)
            if seen.insert(identity).inserted {
                files.append(LibraryFile(identity: identity, rootPath: root, path: mapping.path))
            }
        }
        return files
    }
}
