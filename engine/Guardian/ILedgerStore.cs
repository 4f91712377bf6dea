namespace ModelGuardian.Engine.Guardian;

/// <summary>
/// A store that keeps both the ledger and the API users, in one place (every implementation does:
/// <see cref="InMemoryLedger"/>, <see cref="SqliteLedger"/>, <see cref="PostgresLedger"/>).
/// </summary>
public interface ILedgerStore : ILedger, IUserStore;
