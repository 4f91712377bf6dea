using System.Runtime.CompilerServices;

// ILGPU's CPU accelerator emits its kernel launchers into a dynamic assembly named "ILGPURuntime";
// the kernel parameter structs (ConvParams, …) are internal, so that assembly must see them.
[assembly: InternalsVisibleTo("ILGPURuntime")]
