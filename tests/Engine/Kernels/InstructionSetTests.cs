using ModelGuardian.Kernels.Cpu;

namespace ModelGuardian.Tests.Kernels;

/// <summary>
/// .ci/run repeats the kernel suites with .NET's intrinsic switches off and names the path it expects in
/// MG_EXPECT_CPU_PATH: a switch the runtime ignores (as .NET 10 ignores DOTNET_EnableAVX512F) would otherwise rerun the
/// same path and pass having tested nothing new. Without the variable there is nothing to check.
/// </summary>
public sealed class InstructionSetTests
{
    [Fact]
    public void TheCpuBackendRunsThePathTheSuiteAskedFor()
    {
        if (Environment.GetEnvironmentVariable("MG_EXPECT_CPU_PATH") is not { Length: > 0 } expected) return;
        using var k = new CpuKernels();
        Assert.Equal(expected, k.Name);
    }
}
