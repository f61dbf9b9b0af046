import Tensors

/// Every op-level check `seqlab check` knows: the Tensors module's op gradient checks, fast-form == slow-form
/// comparisons, the shared modules' checks (`ModuleChecks`) and the checks each registered layer's factory brings
/// (`LayerFactory.opChecks`).
public enum CheckCatalog {
    public static var opChecks: [OpCheck] {
        OpCheck.catalog + OpCheck.formChecks + ModuleChecks.all + LayerRegistry.factories.flatMap { $0.opChecks }
    }
}
