// A behavioural model of a 16-bit SDR SDRAM chip (MT48LC16M16A2 and its equivalents: 4 banks of
// 8192 rows of 512 columns), written for convhw's simulations from the datasheet's command
// truth table and timing parameters (JEDEC SDR SDRAM), not from any vendor's model.
//
// What it models: the commands (NOP, ACTIVE, READ, WRITE, PRECHARGE / PRECHARGE ALL, AUTO
// REFRESH, LOAD MODE REGISTER, BURST TERMINATE), one open row per bank, the mode register's CAS
// latency (2 or 3), DQM byte masks on writes and reads, and the storage itself: STORED_ROWS rows
// per bank, any of the 8192, each given a slot when first opened (opening one more distinct row
// in a bank is a violation: a simulation sizes it to what it uses).
// Read data is driven onto dq from the clock edge CL - 1 edges after the READ until the next
// edge, so that a controller sampling at the edge CL edges after the READ sees it (the
// datasheet's tAC and tOH, with zero delays).
//
// What it checks, counting `clk` edges at CLK_PERIOD_PS (each rule a violation, counted in
// `violations` and printed with its time): the power-up wait before the first command with CKE
// high; PRECHARGE ALL, then two AUTO REFRESH and a LOAD MODE REGISTER before the first ACTIVE;
// tRCD (ACTIVE to READ/WRITE), tRAS (ACTIVE to PRECHARGE), tRC (ACTIVE to ACTIVE, same bank, and
// AUTO REFRESH to ACTIVE), tRP (PRECHARGE to ACTIVE or AUTO REFRESH), tRFC, tRRD (ACTIVE to
// ACTIVE, other bank), tWR (last write data to PRECHARGE), tMRD (LOAD MODE to any command); a
// READ or WRITE to a bank with no open row, an ACTIVE to a bank with one, AUTO REFRESH or LOAD
// MODE with a row open; a burst length other than 1 or a reserved operating mode at a READ or
// WRITE (what LiteDRAM's SDR PHY uses; the model does not burst); and the refresh interval: no
// more than REFRESH_GAP_PS between AUTO REFRESH commands once initialised (the datasheet lets a
// controller postpone up to eight refreshes: 8 x 7.8 us, plus one).
//
// Defaults: the slowest speed grade's timings (-75: tRCD = tRP = 20 ns, tRC = tRFC = 66 ns,
// tRAS = 44 ns, tWR = 15 ns, tRRD = 15 ns).

`timescale 1ns / 1ps

module sdram_chip #(
    parameter integer CLK_PERIOD_PS   = 16667,
    parameter integer STORED_ROWS     = 64,
    parameter integer T_INIT_PS       = 100_000_000,   // 100 us power-up wait
    parameter integer T_RCD_PS        = 20_000,
    parameter integer T_RP_PS         = 20_000,
    parameter integer T_RC_PS         = 66_000,
    parameter integer T_RAS_PS        = 44_000,
    parameter integer T_RFC_PS        = 66_000,
    parameter integer T_WR_PS         = 15_000,
    parameter integer T_RRD_PS        = 15_000,
    parameter integer T_MRD_CK        = 2,
    parameter integer REFRESH_GAP_PS  = 70_400_000       // 9 x 7.8125 us (+ a little)
) (
    input  wire        clk,
    input  wire        power_on,     // high: the chip starts again from power-up (state, counts)
    input  wire        cke,
    input  wire        cs_n,
    input  wire        ras_n,
    input  wire        cas_n,
    input  wire        we_n,
    input  wire [1:0]  ba,
    input  wire [12:0] a,
    input  wire [1:0]  dqm,
    inout  wire [15:0] dq,
    output reg  [31:0] violations,
    output reg  [31:0] refreshes,
    output reg  [31:0] reads,
    output reg  [31:0] writes,
    output reg         initialised
);
    // A duration in edges: the smallest count of clock periods that covers it.
    function integer edges(input integer ps);
        edges = (ps + CLK_PERIOD_PS - 1) / CLK_PERIOD_PS;
    endfunction

    localparam integer RCD = edges(T_RCD_PS), RP = edges(T_RP_PS), RC = edges(T_RC_PS);
    localparam integer RAS = edges(T_RAS_PS), RFC = edges(T_RFC_PS), WR = edges(T_WR_PS);
    localparam integer RRD = edges(T_RRD_PS), INIT = edges(T_INIT_PS);
    localparam integer REFRESH_GAP = REFRESH_GAP_PS / CLK_PERIOD_PS;
    localparam integer NEVER = -1_000_000_000;

    reg [15:0] memory [0:4 * STORED_ROWS * 512 - 1];

    integer    now;                  // edges since power-up
    integer    cke_high_since;
    reg        cke_seen;
    reg [12:0] mode;
    reg [3:0]  init_step;            // 0 nothing, 1 precharged, 2-3 refreshed, 4 mode set
    reg        open   [0:3];
    reg [31:0] slot   [0:3];                  // the open row's storage slot
    reg [12:0] tags   [0:4 * STORED_ROWS - 1];   // the row each slot holds, per bank
    reg [31:0] used   [0:3];                  // slots given out, per bank
    integer    s, found;
    integer    t_active [0:3], t_precharge [0:3], t_write [0:3];
    integer    t_any_active, t_refresh, t_mode;
    integer    i;

    // Read data in flight: what the chip drives on dq, from which edge.
    reg [15:0] out_data [0:3];
    reg        out_valid [0:3];
    reg [1:0]  out_mask [0:3];
    reg [15:0] dq_out;
    reg        dq_drive;
    assign dq = dq_drive ? dq_out : 16'bz;

    task power_up;
        begin
            now = 0; cke_seen = 0; cke_high_since = 0; mode = 0; init_step = 0;
            violations = 0; refreshes = 0; reads = 0; writes = 0; initialised = 0;
            t_any_active = NEVER; t_refresh = NEVER; t_mode = NEVER;
            dq_drive = 0; dq_out = 0;
            for (i = 0; i < 4; i = i + 1) begin
                open[i] = 0; slot[i] = 0; used[i] = 0;
                t_active[i] = NEVER; t_precharge[i] = NEVER; t_write[i] = NEVER;
                out_valid[i] = 0; out_data[i] = 0; out_mask[i] = 0;
            end
        end
    endtask

    // A chip powers up holding arbitrary data: here a fixed pattern rather than X, so that a
    // read of a word never written is defined (and a controller that drops a write is caught
    // by a value, not by an X).
    integer word;
    initial begin
        power_up;
        for (word = 0; word < 4 * STORED_ROWS * 512; word = word + 1)
            memory[word] = word[15:0] ^ 16'hA5C3;
    end

    task violation(input [8*96-1:0] what);
        begin
            violations = violations + 1;
            $display("sdram_chip: %0t ps: %0s", $time * 1000, what);
        end
    endtask

    // An elapsed-edges rule: `since` the last event, at least `need` edges.
    task need(input integer since, input integer edges_needed, input [8*96-1:0] what);
        begin
            if (since != NEVER && now - since < edges_needed)
                violation(what);
        end
    endtask

    wire [3:0]  command = {cs_n, ras_n, cas_n, we_n};
    integer     index;
    integer     cl;

    always @(posedge clk) begin
      if (power_on) begin
        power_up;
      end else begin
        now = now + 1;
        cl = {29'd0, mode[6:4]};
        // Read data: the pipeline moves on one edge; what reaches stage CL - 1 is driven until
        // the next edge.
        for (i = 3; i > 0; i = i - 1) begin
            out_valid[i] = out_valid[i - 1]; out_data[i] = out_data[i - 1];
            out_mask[i] = out_mask[i - 1];
        end
        out_valid[0] = 0;
        dq_drive = (cl >= 2) ? out_valid[cl - 1] : 1'b0;
        dq_out = (cl >= 2) ? out_data[cl - 1] : 16'h0;
        if (cl >= 2 && out_valid[cl - 1]) begin
            if (out_mask[cl - 1][0]) dq_out[7:0] = 8'hxx;
            if (out_mask[cl - 1][1]) dq_out[15:8] = 8'hxx;
        end

        if (!cke) begin
            cke_seen = 0;
        end else begin
            if (!cke_seen) begin
                cke_seen = 1;
                cke_high_since = now;
            end
            if (initialised && t_refresh != NEVER && now - t_refresh > REFRESH_GAP) begin
                violation("refresh interval exceeded");
                t_refresh = now;                  // report each missed interval once
            end
            if (!cs_n && command != 4'b0111) begin
                if (now - cke_high_since < INIT && init_step == 0)
                    violation("command before the power-up wait");
                if (t_mode != NEVER && now - t_mode < T_MRD_CK)
                    violation("tMRD: command too soon after LOAD MODE REGISTER");
            end
            case (command)
                4'b0011: begin                        // ACTIVE
                    if (init_step != 4) violation("ACTIVE before initialisation");
                    if (open[ba]) violation("ACTIVE to a bank with an open row");
                    need(t_active[ba], RC, "tRC: ACTIVE to ACTIVE, same bank");
                    need(t_precharge[ba], RP, "tRP: PRECHARGE to ACTIVE");
                    need(t_any_active, RRD, "tRRD: ACTIVE to ACTIVE, other bank");
                    need(t_refresh, RFC, "tRFC: AUTO REFRESH to ACTIVE");
                    found = -1;
                    for (s = 0; s < STORED_ROWS; s = s + 1)
                        if (s < used[ba] && tags[ba * STORED_ROWS + s] == a) found = s;
                    if (found < 0) begin
                        if (used[ba] == STORED_ROWS) begin
                            violation("ACTIVE to more distinct rows than the model stores (STORED_ROWS)");
                            found = 0;
                        end else begin
                            found = used[ba];
                            tags[ba * STORED_ROWS + found] = a;
                            used[ba] = used[ba] + 1;
                        end
                    end
                    open[ba] = 1; slot[ba] = found;
                    t_active[ba] = now; t_any_active = now;
                end
                4'b0101, 4'b0100: begin               // READ, WRITE
                    if (!open[ba]) violation("READ or WRITE to a bank with no open row");
                    need(t_active[ba], RCD, "tRCD: ACTIVE to READ or WRITE");
                    if (mode[2:0] != 3'b000 || mode[8:7] != 2'b00)
                        violation("READ or WRITE with a burst length other than 1 or a reserved operating mode");
                    index = ({30'd0, ba} * STORED_ROWS + slot[ba]) * 512 + {23'd0, a[8:0]};
                    if (command == 4'b0100) begin
                        if (!dqm[0]) memory[index][7:0] = dq[7:0];
                        if (!dqm[1]) memory[index][15:8] = dq[15:8];
                        t_write[ba] = now;
                        writes = writes + 1;
                    end else begin
                        out_valid[0] = 1; out_data[0] = memory[index];
                        out_mask[0] = dqm;
                        reads = reads + 1;
                    end
                    if (a[10]) begin                  // auto precharge
                        open[ba] = 0; t_precharge[ba] = now + (command == 4'b0100 ? WR : 0);
                    end
                end
                4'b0010: begin                        // PRECHARGE (A10: all banks)
                    for (i = 0; i < 4; i = i + 1) begin
                        if (a[10] || {30'd0, ba} == i) begin
                            if (open[i]) need(t_active[i], RAS, "tRAS: ACTIVE to PRECHARGE");
                            need(t_write[i], WR, "tWR: WRITE to PRECHARGE");
                            open[i] = 0; t_precharge[i] = now;
                        end
                    end
                    if (a[10] && init_step == 0) init_step = 1;
                end
                4'b0001: begin                        // AUTO REFRESH
                    for (i = 0; i < 4; i = i + 1) begin
                        if (open[i]) violation("AUTO REFRESH with a row open");
                        need(t_precharge[i], RP, "tRP: PRECHARGE to AUTO REFRESH");
                    end
                    need(t_refresh, RFC, "tRFC: AUTO REFRESH to AUTO REFRESH");
                    t_refresh = now;
                    refreshes = refreshes + 1;
                    if (init_step == 1 || init_step == 2) init_step = init_step + 1;
                end
                4'b0000: begin                        // LOAD MODE REGISTER
                    for (i = 0; i < 4; i = i + 1)
                        if (open[i]) violation("LOAD MODE REGISTER with a row open");
                    mode = a; t_mode = now;
                    if (init_step == 3) begin
                        init_step = 4; initialised = 1;
                    end
                    if (a[6:4] != 3'd2 && a[6:4] != 3'd3)
                        violation("LOAD MODE REGISTER with a CAS latency other than 2 or 3");
                end
                4'b0110: ;                             // BURST TERMINATE: nothing bursts here
                default: ;                             // NOP, or deselected
            endcase
        end
      end
    end
endmodule
