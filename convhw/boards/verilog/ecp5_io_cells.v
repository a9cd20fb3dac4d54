// Simulation models of the four ECP5 primitives LiteDRAM's generated core instantiates
// (rtl/boards/litedram_ulx3s.v), with the semantics of Lattice's FPGA libraries reference and of
// Yosys's own models (share/ecp5/cells_ff.vh, cells_io.vh, common_sim.vh: TRELLIS_FF with
// REGSET "SET", TRELLIS_IO), which they follow.
//
// Why our own: Yosys's models are written for Yosys; Icarus cannot elaborate common_sim.vh
// (a `$error` inside a generate), and Verilator takes TRELLIS_IO's `T === 1'bz` test as a
// tristate at the top-level I/O and stops.
`timescale 1ns / 1ps

// Output / input flip-flops of an I/O cell: rising SCLK, clock enable SP, asynchronous preset
// PD; like every ECP5 flip-flop, they start at their set/reset value (set: 1).
module OFS1P3BX (input D, SP, SCLK, PD, output reg Q);
    parameter GSR = "ENABLED";
    initial Q = 1'b1;
    always @(posedge SCLK or posedge PD)
        if (PD) Q <= 1'b1;
        else if (SP) Q <= D;
endmodule

module IFS1P3BX (input D, SP, SCLK, PD, output reg Q);
    parameter GSR = "ENABLED";
    initial Q = 1'b1;
    always @(posedge SCLK or posedge PD)
        if (PD) Q <= 1'b1;
        else if (SP) Q <= D;
endmodule

// A fabric flip-flop with asynchronous preset PD (LiteX's reset synchroniser).
module FD1S3BX (input D, CK, PD, output reg Q);
    parameter GSR = "ENABLED";
    initial Q = 1'b1;
    always @(posedge CK or posedge PD)
        if (PD) Q <= 1'b1;
        else Q <= D;
endmodule

// An I/O buffer; T high turns the output off.
module TRELLIS_IO (inout B, input I, input T, output O);
    parameter DIR = "INPUT";
    generate
        if (DIR == "INPUT") begin : input_only
            assign O = B;
        end else if (DIR == "OUTPUT") begin : output_only
            assign B = T ? 1'bz : I;
            assign O = 1'b0;
        end else begin : bidirectional
            assign B = T ? 1'bz : I;
            assign O = B;
        end
    endgenerate
endmodule
