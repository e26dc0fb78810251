/// Errors loading or running a model; each names the file, tensor or field at fault.
public struct ModelError: Error, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
