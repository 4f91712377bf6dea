using ModelGuardian.Engine.Guardian;

namespace ModelGuardian.Tests.Guardian;

/// <summary>The test double, held to the same suite as the real stores.</summary>
public sealed class InMemoryLedgerTests : LedgerSuite
{
    protected override ILedgerStore CreateStore() => new InMemoryLedger();
}
