import Tensors

/// Every op-level check `seqlab check` knows: the Tensors module's op gradient checks, fast-form == slow-form
/// comparisons, and the kernels each layer module adds.
public enum CheckCatalog {
    public static var opChecks: [OpCheck] {
        OpCheck.catalog
            + OpCheck.formChecks
            + MambaChecks.opChecks
            + LinearAttentionChecks.all
            + AttentionChecks.all
            + S4Checks.opChecks
            + DeltaRuleChecks.all
            + RATChecks.checks
            + GAMChecks.checks
    }
}
