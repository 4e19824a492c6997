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

    /// Decodes already-read files (as the release verifier hands them over after hashing).
    /// `name` is what messages call the file. Files are parsed in parallel.
    public static func decode(files: [(name: String, bytes: Data)], extraDiagnostics: [Diagnostic] = []) throws -> DesiredState {
        let results = UnsafeMutableBufferPointer<FileResult>.allocate(capacity: files.count)
        results.initialize(repeating: FileResult())
        defer {
            results.deinitialize()
            results.deallocate()
        }
        let shared = SendableBuffer(results)
        DispatchQueue.concurrentPerform(iterations: files.count) { index in
            shared.buffer[index] = decodeFile(name: files[index].name, bytes: files[index].bytes)
        }
        var diagnostics = extraDiagnostics
        var resources: [DecodedResource] = []
        var declarations = Declarations()
        for result in results {
            diagnostics += result.diagnostics
            resources += result.resources
            declarations.declared += result.declarations.declared
            declarations.references += result.declarations.references
        }
        var firstSeen: [ResourceID: SourceLocation] = [:]
        for (id, location) in declarations.declared {
            if let first = firstSeen[id] {
                diagnostics.append(Diagnostic(
                    location: location, field: "metadata.name", message: "duplicate \(id) (first declared at \(first))"))
            } else {
                firstSeen[id] = location
            }
        }
        for reference in declarations.references where firstSeen[reference.target] == nil {
            let mark = reference.cursor.mark
            diagnostics.append(Diagnostic(
                location: SourceLocation(file: reference.cursor.sink.file, line: mark?.line ?? 1, column: mark?.column ?? 1),
                field: reference.cursor.field,
                message: "\(reference.from) refers to \(reference.target), which no manifest declares"))
        }
        guard diagnostics.isEmpty else { throw ManifestError(diagnostics) }
        var state = DesiredState()
        for resource in resources {
            switch resource.value {
            case .service(let service): state.services[service.metadata.name] = service
            case .backupPolicy(let policy): state.backupPolicies[policy.metadata.name] = policy
            case .monitor(let monitor): state.monitors[monitor.metadata.name] = monitor
            case .notifier(let notifier): state.notifiers[notifier.metadata.name] = notifier
            case .window(let window): state.windows[window.metadata.name] = window
            }
        }
        return state
    }

    struct FileResult {
        var diagnostics: [Diagnostic] = []
        var resources: [DecodedResource] = []
        var declarations = Declarations()
    }

    static func decodeFile(name: String, bytes: Data) -> FileResult {
        let sink = DiagnosticSink(file: name)
        var resources: [DecodedResource] = []
        var declarations = Declarations()
        if bytes.count > maximumFileSize {
            sink.report(nil, "", "file is larger than \(maximumFileSize / 1024) KiB")
            return FileResult(diagnostics: sink.diagnostics)
        }
        // Checked in place, and parsed from the file's own bytes: no copy of every file.
        let isUTF8 = bytes.withUnsafeBytes { raw in raw.allSatisfy { $0 < 0x80 } || String(validating: raw, as: UTF8.self) != nil }
        guard isUTF8 else {
            sink.report(nil, "", "not UTF-8 text")
            return FileResult(diagnostics: sink.diagnostics)
        }
        for root in bytes.withUnsafeBytes({ SafeYAML.documents(utf8: $0, sink: sink) }) ?? [] {
            if case .scalar(let scalar) = root, Cursor.tagName(scalar) == .null { continue }
            if let resource = DocumentDecoder.decode(Cursor(node: root, field: "", sink: sink), declarations: &declarations) {
                resources.append(resource)
            }
        }
        return FileResult(
            diagnostics: sink.diagnostics, resources: sink.diagnostics.isEmpty ? resources : [], declarations: declarations)
    }

    static func join(_ directory: String, _ name: String) -> String {
        directory.hasSuffix("/") ? directory + name : directory + "/" + name
    }
}

/// Lets the parallel decode write each file's result into its own slot.
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
