#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A whole file mapped into memory privately, unmapped when the last reference goes: the one way the weight readers
/// (safetensors, GGUF) open a file. A failure is a `MappedFile.Failure` whose message the reader puts after the path.
public final class MappedFile: @unchecked Sendable {
    public struct Failure: Error, CustomStringConvertible {
        public let message: String
        public var description: String { message }
    }

    public let path: String
    /// The file's first byte; a one-byte buffer of its own for an empty file, which cannot be mapped.
    public let base: UnsafeMutableRawPointer
    /// The file's length in bytes.
    public let length: Int
    private let isMapped: Bool

    /// Maps `path` read-only, or copy-on-write when `writable` (writes stay in this process, never reach the file).
    public init(path: String, writable: Bool = false) throws {
        self.path = path
        let descriptor = open(path, O_RDONLY)
        guard descriptor >= 0 else { throw Failure(message: "cannot open: \(String(cString: strerror(errno)))") }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else {
            throw Failure(message: "cannot stat: \(String(cString: strerror(errno)))")
        }
        guard (status.st_mode & S_IFMT) == S_IFREG else { throw Failure(message: "not a regular file") }
        length = Int(status.st_size)
        guard length > 0 else {
            base = UnsafeMutableRawPointer.allocate(byteCount: 1, alignment: 64)
            isMapped = false
            return
        }
        let protection = writable ? PROT_READ | PROT_WRITE : PROT_READ
        guard let mapping = mmap(nil, length, protection, MAP_PRIVATE, descriptor, 0), mapping != MAP_FAILED else {
            throw Failure(message: "cannot map: \(String(cString: strerror(errno)))")
        }
        base = mapping
        isMapped = true
    }

    deinit {
        if isMapped { munmap(base, length) } else { base.deallocate() }
    }
}
