public import Foundation
public import StetCore
import StetCrypto

/// Turns manifest files into a `DesiredState`, strictly: every problem of every file is
/// reported, each with its `file:line:column`, and nothing is returned unless there are none.
public enum ManifestLoader {
    /// Largest manifest file read. A file above it is an error, not a slow start.
    public static let maximumFileSize = InputFile.Limit.manifest

    /// Reads and decodes every manifest file in `directory` (schema only; no signatures).
    public static func load(directory: String) throws -> DesiredState {
        let dir = ManifestDirectory(path: directory)
        let names = try dir.list().manifests
        var files: [(name: String, bytes: Data)] = []
        var unreadable: [Diagnostic] = []
        for name in names {
            let display = join(directory, name)
            do {
                if let bytes = try InputFile.read(display, limit: maximumFileSize) {
                    files.append((display, bytes))
                } else {
                    unreadable.append(Diagnostic(location: SourceLocation(file: display, line: 1, column: 1), field: "", message: "cannot read the file"))
                }
            } catch {
                unreadable.append(Diagnostic(location: SourceLocation(file: display, line: 1, column: 1), field: "", message: error.message))
            }
        }
        return try decode(files: files, extraDiagnostics: unreadable)
    }

    /// Decodes already-read files. `name` is what messages call the file. Files are parsed in
    /// parallel.
    public static func decode(files: [(name: String, bytes: Data)], extraDiagnostics: [Diagnostic] = []) throws -> DesiredState {
        let parts = Parallel.chunks(of: files.count) { range in
            var decoded = Decoded()
            for index in range { decoded.add(name: files[index].name, bytes: files[index].bytes) }
            return decoded
        }
        return try join(parts, extraDiagnostics: extraDiagnostics)
    }

    /// The desired state of files decoded in parts (`Decoded`), in the order given: checks what
    /// only all of them together can show (a name declared twice, a reference to nothing).
    /// Throws `ManifestError` with every problem of every file.
    static func join(_ parts: [Decoded], extraDiagnostics: [Diagnostic] = []) throws -> DesiredState {
        // Read from the parts where they are: a release's resources are not copied into one
        // array first.
        var diagnostics = extraDiagnostics
        var declared = 0
        for part in parts {
            diagnostics += part.diagnostics
            declared += part.declarations.declared.count
        }
        var firstSeen: [ResourceID: SourceLocation] = Dictionary(minimumCapacity: declared)
        for part in parts {
            for (id, location) in part.declarations.declared {
                if let first = firstSeen[id] {
                    diagnostics.append(Diagnostic(
                        location: location, field: "metadata.name", message: "duplicate \(id) (first declared at \(first))"))
                } else {
                    firstSeen[id] = location
                }
            }
        }
        for part in parts {
            for reference in part.declarations.references where firstSeen[reference.target] == nil {
                let mark = reference.cursor.mark
                diagnostics.append(Diagnostic(
                    location: SourceLocation(file: reference.cursor.sink.file, line: mark?.line ?? 1, column: mark?.column ?? 1),
                    field: reference.cursor.field,
                    message: "\(reference.from) refers to \(reference.target), which no manifest declares"))
            }
        }
        guard diagnostics.isEmpty else { throw ManifestError(diagnostics) }
        // Each dictionary made its final size at once: growing one rehashes every entry so far.
        var counts: [ResourceKind: Int] = [:]
        for part in parts {
            for resource in part.resources { counts[resource.id.kind, default: 0] += 1 }
        }
        var state = DesiredState()
        state.services.reserveCapacity(counts[.service] ?? 0)
        state.backupPolicies.reserveCapacity(counts[.backupPolicy] ?? 0)
        state.monitors.reserveCapacity(counts[.monitor] ?? 0)
        state.notifiers.reserveCapacity(counts[.notifier] ?? 0)
        state.windows.reserveCapacity(counts[.maintenanceWindow] ?? 0)
        for part in parts {
            for resource in part.resources {
                switch resource.value {
                case .service(let service): state.services[service.metadata.name] = service
                case .backupPolicy(let policy): state.backupPolicies[policy.metadata.name] = policy
                case .monitor(let monitor): state.monitors[monitor.metadata.name] = monitor
                case .notifier(let notifier): state.notifiers[notifier.metadata.name] = notifier
                case .window(let window): state.windows[window.metadata.name] = window
                }
            }
        }
        return state
    }

    /// What a run of files decoded to, in file order: every problem, every resource of the files
    /// without one, and what every document declares and refers to.
    struct Decoded {
        var diagnostics: [Diagnostic] = []
        var resources: [DecodedResource] = []
        var declarations = Declarations()

        /// Decodes the file `bytes`, which messages call `name`, and adds what it holds.
        mutating func add(name: String, bytes: Data) {
            let sink = DiagnosticSink(file: name)
            if bytes.count > maximumFileSize {
                sink.report(nil, "", "file is larger than \(maximumFileSize / 1024) KiB")
                diagnostics += sink.diagnostics
                return
            }
            // Checked in place, and parsed from the file's own bytes: no copy of every file.
            let isUTF8 = bytes.withUnsafeBytes { raw in raw.allSatisfy { $0 < 0x80 } || String(validating: raw, as: UTF8.self) != nil }
            guard isUTF8 else {
                sink.report(nil, "", "not UTF-8 text")
                diagnostics += sink.diagnostics
                return
            }
            let before = resources.count
            for root in bytes.withUnsafeBytes({ SafeYAML.documents(utf8: $0, sink: sink) }) ?? [] {
                if case .scalar(let scalar) = root, Cursor.tagName(scalar) == .null { continue }
                if let resource = DocumentDecoder.decode(Cursor(node: root, field: "", sink: sink), declarations: &declarations) {
                    resources.append(resource)
                }
            }
            // A file with a problem declares nothing usable; its problems say why.
            if !sink.diagnostics.isEmpty {
                resources.removeSubrange(before...)
                diagnostics += sink.diagnostics
            }
        }
    }

    static func join(_ directory: String, _ name: String) -> String {
        directory.hasSuffix("/") ? directory + name : directory + "/" + name
    }
}

/// Work spread over every core in runs of neighbouring items.
enum Parallel {
    /// Items per run: enough that a run's bookkeeping is small beside its work, few enough that
    /// every core gets many runs and none waits long for the last.
    static let chunkSize = 64

    /// `body` over `0..<count` in consecutive runs, on every core; each run's result, in order.
    static func chunks<T>(of count: Int, _ body: @Sendable (Range<Int>) -> T) -> [T] {
        let runs = (count + chunkSize - 1) / chunkSize
        return [T](unsafeUninitializedCapacity: runs) { buffer, initialized in
            let shared = SendableBuffer(buffer)
            // Each run writes its own slot, once.
            DispatchQueue.concurrentPerform(iterations: runs) { run in
                let range = run * chunkSize..<min(count, (run + 1) * chunkSize)
                (shared.buffer.baseAddress! + run).initialize(to: body(range))
            }
            initialized = runs
        }
    }
}

/// Lets the runs of a parallel loop write each its own slot.
struct SendableBuffer<T>: @unchecked Sendable {
    let buffer: UnsafeMutableBufferPointer<T>
    init(_ buffer: UnsafeMutableBufferPointer<T>) { self.buffer = buffer }
}

extension String {
    init?(validatingUTF8Data data: Data) {
        guard let text = String(data: data, encoding: .utf8) else { return nil }
        self = text
    }
}
