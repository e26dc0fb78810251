/// Errors raised by the core engine.
public enum RankwiseError: Error, CustomStringConvertible {
    case blas(String)
    case shape(String)
    case invalid(String)
    case mpi(String)

    public var description: String {
        switch self {
        case .blas(let m): return "BLAS: \(m)"
        case .shape(let m): return "shape mismatch: \(m)"
        case .invalid(let m): return m
        case .mpi(let m): return "MPI: \(m)"
        }
    }
}
