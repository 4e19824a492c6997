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
        return try join(DecodedManifests(parts), extraDiagnostics: extraDiagnostics)
    }

    /// The desired state of files decoded in parts (`Decoded`), in the order given: checks what
    /// only all of them together can show (a name declared twice, a reference to nothing).
    /// Throws `ManifestError` with every problem of every file.
    static func join(_ manifests: DecodedManifests, extraDiagnostics: [Diagnostic] = []) throws -> DesiredState {
        let parts = manifests.parts
        var diagnostics = extraDiagnostics
        for part in parts { diagnostics += part.diagnostics }
        // Six pieces of work apart, on every core: the names and references of every file, and
        // one dictionary per kind. The parts are read where they are, not copied into one array.
        let pieces = Parallel.each(6) { task -> (state: DesiredState, problems: [Diagnostic]) in
            var piece = DesiredState()
            switch task {
            case 0: piece.services = named(in: manifests) { if case .service(let value) = $0 { value } else { nil } }
            case 1: piece.backupPolicies = named(in: manifests) { if case .backupPolicy(let value) = $0 { value } else { nil } }
            case 2: piece.monitors = named(in: manifests) { if case .monitor(let value) = $0 { value } else { nil } }
            case 3: piece.notifiers = named(in: manifests) { if case .notifier(let value) = $0 { value } else { nil } }
            case 4: piece.windows = named(in: manifests) { if case .window(let value) = $0 { value } else { nil } }
            default: return (piece, crossFileProblems(manifests))
            }
            return (piece, [])
        }
        diagnostics += pieces[5].problems
        guard diagnostics.isEmpty else { throw ManifestError(diagnostics) }
        var state = DesiredState()
        state.services = pieces[0].state.services
        state.backupPolicies = pieces[1].state.backupPolicies
        state.monitors = pieces[2].state.monitors
        state.notifiers = pieces[3].state.notifiers
        state.windows = pieces[4].state.windows
        return state
    }

    /// Every resource `pick` takes, by its name, in a dictionary made its final size at once
    /// (growing one rehashes every entry so far).
    private static func named<R: NamedResource>(in manifests: DecodedManifests, _ pick: (DecodedResource.Value) -> R?) -> [String: R] {
        var count = 0
        for part in manifests.parts {
            for resource in part.resources where pick(resource.value) != nil { count += 1 }
        }
        var named: [String: R] = Dictionary(minimumCapacity: count)
        for part in manifests.parts {
            for resource in part.resources {
                if let value = pick(resource.value) { named[value.metadata.name] = value }
            }
        }
        return named
    }

    /// A name declared twice, and a reference to a name nobody declares, across all files.
    private static func crossFileProblems(_ manifests: DecodedManifests) -> [Diagnostic] {
        var problems: [Diagnostic] = []
        var declared = 0
        for part in manifests.parts { declared += part.declarations.declared.count }
        var firstSeen: [ResourceID: SourceLocation] = Dictionary(minimumCapacity: declared)
        for part in manifests.parts {
            for (id, location) in part.declarations.declared {
                if let first = firstSeen[id] {
                    problems.append(Diagnostic(
                        location: location, field: "metadata.name", message: "duplicate \(id) (first declared at \(first))"))
                } else {
                    firstSeen[id] = location
                }
            }
        }
        for part in manifests.parts {
            for reference in part.declarations.references where firstSeen[reference.target] == nil {
                let place = reference.place
                problems.append(Diagnostic(
                    location: SourceLocation(file: place.file, line: place.mark.line, column: place.mark.column),
                    field: place.field,
                    message: "\(reference.from) refers to \(reference.target), which no manifest declares"))
            }
        }
        return problems
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
                if root.isNull { continue }
                if let resource = DocumentDecoder.decode(root, declarations: &declarations) {
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

/// What the manifest files of a release decoded to, in runs, in the order of its files. Written
/// once, when made, and only read after; freed on every core, as it was made (a release of
/// 10,000 files holds some 100,000 allocations).
final class DecodedManifests: @unchecked Sendable {
    let parts: UnsafeMutableBufferPointer<ManifestLoader.Decoded>

    init(_ parts: [ManifestLoader.Decoded]) {
        self.parts = .allocate(capacity: parts.count)
        _ = self.parts.initialize(from: parts)
    }

    deinit {
        let shared = SendableBuffer(parts)
        DispatchQueue.concurrentPerform(iterations: parts.count) { (shared.buffer.baseAddress! + $0).deinitialize(count: 1) }
        parts.deallocate()
    }
}

/// Work spread over every core.
enum Parallel {
    /// Items per run: enough that a run's bookkeeping is small beside its work, few enough that
    /// every core gets many runs and none waits long for the last.
    static let chunkSize = 64

    /// `body` over `0..<count` in consecutive runs, on every core; each run's result, in order.
    static func chunks<T>(of count: Int, _ body: @Sendable (Range<Int>) -> T) -> [T] {
        each((count + chunkSize - 1) / chunkSize) { run in body(run * chunkSize..<min(count, (run + 1) * chunkSize)) }
    }

    /// `body` of each of `0..<count`, on every core; the results in order.
    static func each<T>(_ count: Int, _ body: @Sendable (Int) -> T) -> [T] {
        [T](unsafeUninitializedCapacity: count) { buffer, initialized in
            let shared = SendableBuffer(buffer)
            // Each task writes its own slot, once.
            DispatchQueue.concurrentPerform(iterations: count) { task in
                (shared.buffer.baseAddress! + task).initialize(to: body(task))
            }
            initialized = count
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

/// A resource of a manifest, known by its metadata's name.
protocol NamedResource { var metadata: Metadata { get } }

extension Service: NamedResource {}
extension BackupPolicy: NamedResource {}
extension Monitor: NamedResource {}
extension Notifier: NamedResource {}
extension MaintenanceWindow: NamedResource {}
